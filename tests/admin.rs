//! The admin server over real loopback sockets: exact bytes on the wire,
//! readiness through the lifecycle, zero failed requests under load during
//! shutdown, and bad input that never disturbs the service.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::executor::block_on;
use lameduck::admin::{AdminOptions, AdminServer};
use lameduck::{BoxError, Component, Context, Health, Lifecycle, check_fn};

/// Sends raw bytes, reads to EOF (bounded). Errors count as "dropped".
fn raw(addr: SocketAddr, request: &[u8]) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(request)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn get(addr: SocketAddr, path: &str) -> String {
    raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
    .unwrap()
}

fn status(response: &str) -> u16 {
    response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn body(response: &str) -> &str {
    response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or("")
}

struct Started {
    handle: lameduck::Handle,
    addr: SocketAddr,
    runner: std::thread::JoinHandle<Result<lameduck::Report, lameduck::Error>>,
}

fn start(
    options: AdminOptions,
    build: impl FnOnce(lameduck::LifecycleBuilder) -> lameduck::LifecycleBuilder,
) -> Started {
    let admin = AdminServer::bind_with("127.0.0.1:0", options).unwrap();
    let addr = admin.local_addr();
    let lifecycle = build(Lifecycle::builder().component("admin", admin))
        .build()
        .unwrap();
    let handle = lifecycle.handle();
    let runner = std::thread::spawn(move || lifecycle.run_blocking());
    assert!(block_on(handle.ready()));
    Started {
        handle,
        addr,
        runner,
    }
}

const HEADERS: &str = "Content-Type: text/plain; charset=utf-8\r\n\
                       X-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\n";

#[test]
fn binds_loopback_by_default() {
    let admin = AdminServer::loopback(0).unwrap();
    assert!(admin.local_addr().ip().is_loopback());
    assert_ne!(admin.local_addr().port(), 0);
}

#[test]
fn exact_responses_on_the_wire() {
    let s = start(AdminOptions::new(), |b| {
        b.health_check("db", check_fn(|| async { Health::Healthy }))
            .health_check(
                "cache",
                check_fn(|| async { Health::Unhealthy("cold".into()) }),
            )
    });
    assert_eq!(
        get(s.addr, "/livez"),
        format!("HTTP/1.1 200 OK\r\n{HEADERS}Content-Length: 2\r\nConnection: close\r\n\r\nok")
    );
    let text = "[+]ping ok\nlivez check passed\n";
    assert_eq!(
        get(s.addr, "/livez?verbose"),
        format!(
            "HTTP/1.1 200 OK\r\n{HEADERS}Content-Length: {}\r\nConnection: close\r\n\r\n{text}",
            text.len()
        )
    );
    let text = "[+]ping ok\n[+]launch ok\n[+]shutdown ok\n[+]db ok\n\
                [-]cache failed: reason withheld\nreadyz check failed\n";
    assert_eq!(
        get(s.addr, "/readyz"),
        format!(
            "HTTP/1.1 500 Internal Server Error\r\n{HEADERS}Content-Length: {}\r\n\
             Connection: close\r\n\r\n{text}",
            text.len()
        )
    );
    let text = "[+]ping ok\n[+]launch ok\n[+]shutdown ok\n[+]db ok\n[+]cache excluded: ok\n\
                readyz check passed\n";
    assert_eq!(body_of(s.addr, "/readyz?verbose&exclude=cache"), text);
    assert_eq!(
        get(s.addr, "/readyz/db"),
        format!("HTTP/1.1 200 OK\r\n{HEADERS}Content-Length: 2\r\nConnection: close\r\n\r\nok")
    );
    assert_eq!(
        raw(s.addr, b"HEAD /livez HTTP/1.1\r\nHost: x\r\n\r\n").unwrap(),
        format!("HTTP/1.1 200 OK\r\n{HEADERS}Connection: close\r\n\r\n")
    );
    assert_eq!(
        raw(
            s.addr,
            b"POST /livez HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
        )
        .unwrap(),
        format!(
            "HTTP/1.1 405 Method Not Allowed\r\n{HEADERS}Allow: GET, HEAD\r\n\
             Content-Length: 23\r\nConnection: close\r\n\r\n405 method not allowed\n"
        )
    );
    assert_eq!(status(&get(s.addr, "/nope")), 404);
    let json = raw(
        s.addr,
        b"GET /readyz HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n\r\n",
    )
    .unwrap();
    assert!(
        json.contains("Content-Type: application/json\r\n"),
        "{json}"
    );
    let v: serde_json::Value = serde_json::from_str(body(&json)).unwrap();
    assert_eq!(v["status"], "fail");

    let snap = get(s.addr, "/debug/lifecycle");
    assert_eq!(status(&snap), 200);
    assert!(snap.contains("Content-Type: application/json\r\n"));
    let v: serde_json::Value = serde_json::from_str(body(&snap)).unwrap();
    assert_eq!(v["phase"], "running");
    assert_eq!(v["components"][0]["name"], "admin");
    assert_eq!(v["components"][0]["state"], "ready");
    assert!(v["components"][0]["ready_at_ms"].is_number());
    assert!(v["shutdown_at_ms"].is_null());

    s.handle.request_shutdown(None);
    s.runner.join().unwrap().unwrap();
}

fn body_of(addr: SocketAddr, path: &str) -> String {
    body(&get(addr, path)).to_owned()
}

/// A component that takes a while to start.
struct SlowStart(Duration);

impl Component for SlowStart {
    async fn start(&self, _cx: &Context) -> Result<(), BoxError> {
        futures_timer::Delay::new(self.0).await;
        Ok(())
    }
}

#[test]
fn readiness_over_http_follows_the_lifecycle() {
    let admin = AdminServer::loopback(0).unwrap();
    let addr = admin.local_addr();
    let lifecycle = Lifecycle::builder()
        .lame_duck(Duration::from_millis(300))
        .component("admin", admin)
        .component("slow", SlowStart(Duration::from_millis(400)))
        .build()
        .unwrap();
    let handle = lifecycle.handle();
    let runner = std::thread::spawn(move || lifecycle.run_blocking());
    // The admin server answers during the launch.
    let deadline = Instant::now() + Duration::from_secs(2);
    let during = loop {
        if let Ok(r) = raw(addr, b"GET /readyz HTTP/1.1\r\n\r\n") {
            break r;
        }
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(!handle.is_ready());
    assert_eq!(status(&during), 500);
    assert!(body(&during).contains("[-]launch failed: reason withheld\n"));
    assert_eq!(status(&get(addr, "/livez")), 200);
    assert!(block_on(handle.ready()));
    assert_eq!(status(&get(addr, "/readyz")), 200);
    let t0 = Instant::now();
    handle.request_shutdown(None);
    let after = get(addr, "/readyz");
    assert!(
        t0.elapsed() < Duration::from_millis(50),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(status(&after), 500);
    assert!(body(&after).contains("[-]shutdown failed: reason withheld\n"));
    assert_eq!(status(&get(addr, "/livez")), 200);
    let report = runner.join().unwrap().unwrap();
    // Started first, stopped last.
    let admin = report.component("admin").unwrap();
    let slow = report.component("slow").unwrap();
    assert!(admin.start_at < slow.start_at);
    assert!(admin.stop_at > slow.stop_at);
    // Closed once stopped.
    assert!(raw(addr, b"GET /livez HTTP/1.1\r\n\r\n").is_err());
}

#[test]
fn bad_input_never_disturbs_the_service() {
    let s = start(
        AdminOptions::new()
            .header_timeout(Duration::from_millis(300))
            .max_request_bytes(2048)
            .max_connections(64),
        |b| b,
    );
    let addr = s.addr;

    // Garbage: 400.
    let r = raw(addr, b"\x00\x01\x02 garbage \xff\r\n\r\n").unwrap();
    assert!(r.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{r}");
    let r = raw(addr, b"GET /livez HTTP/9\r\n\r\n").unwrap();
    assert_eq!(status(&r), 400);

    // A huge header: 431, or dropped while we were still writing.
    let mut huge = b"GET /livez HTTP/1.1\r\nX-Big: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 100_000));
    huge.extend(b"\r\n\r\n");
    match raw(addr, &huge) {
        Ok(r) => assert!(r.is_empty() || status(&r) == 431, "{r}"),
        Err(e) => eprintln!("huge header dropped: {e}"),
    }
    // Too many headers: 431.
    let mut many = b"GET /livez HTTP/1.1\r\n".to_vec();
    for i in 0..40 {
        many.extend(format!("X-{i}: 1\r\n").as_bytes());
    }
    many.extend(b"\r\n");
    assert_eq!(status(&raw(addr, &many).unwrap()), 431);

    // A slow client: 408 after the header timeout, not before.
    let t0 = Instant::now();
    let r = raw(addr, b"GET /livez HTTP/1.1\r\nHost:").unwrap();
    assert_eq!(status(&r), 408, "{r}");
    assert!(t0.elapsed() >= Duration::from_millis(250));
    assert!(t0.elapsed() < Duration::from_secs(3));

    // 1,000 connections at once: each answered or dropped, none hangs.
    let mut conns = Vec::new();
    for _ in 0..1000 {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Ok(c) => conns.push(c),
            Err(_) => continue,
        }
    }
    let opened = conns.len();
    let (mut ok, mut busy, mut dropped) = (0, 0, 0);
    for c in &mut conns {
        let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = c.write_all(b"GET /livez HTTP/1.1\r\n\r\n");
    }
    for mut c in conns {
        let mut out = Vec::new();
        match c.read_to_end(&mut out) {
            Ok(_) if out.is_empty() => dropped += 1,
            Ok(_) => match status(&String::from_utf8_lossy(&out)) {
                200 => ok += 1,
                503 | 408 => busy += 1,
                other => panic!("unexpected status {other}"),
            },
            Err(e) => {
                assert_ne!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock,
                    "a connection hung"
                );
                dropped += 1;
            }
        }
    }
    eprintln!("1000 connections: opened {opened}, ok {ok}, busy {busy}, dropped {dropped}");
    assert!(opened >= 900);
    assert!(ok >= 1);

    // The service keeps serving.
    assert_eq!(get(addr, "/livez"), get(addr, "/livez"));
    assert_eq!(status(&get(addr, "/readyz")), 200);
    assert_eq!(s.handle.phase(), lameduck::Phase::Running);
    s.handle.request_shutdown(None);
    s.runner.join().unwrap().unwrap();
}

/// A public server: axum on tokio, with graceful shutdown on its stop
/// signal.
struct Public {
    listener: Mutex<Option<std::net::TcpListener>>,
}

impl Component for Public {
    async fn run(&self, cx: &Context) -> Result<(), BoxError> {
        use axum::routing::get;
        let std = self.listener.lock().unwrap().take().ok_or("run twice")?;
        std.set_nonblocking(true)?;
        let listener = tokio::net::TcpListener::from_std(std)?;
        let app = axum::Router::new()
            .route("/", get(|| async { "hello" }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(1000)).await;
                    "slow"
                }),
            );
        axum::serve(listener, app)
            .with_graceful_shutdown(cx.stop_signal())
            .await?;
        Ok(())
    }
}

#[test]
fn no_request_fails_under_load_during_shutdown() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let public = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let public_addr = public.local_addr().unwrap();
    let admin = AdminServer::loopback(0).unwrap();
    let admin_addr = admin.local_addr();
    let lifecycle = Lifecycle::builder()
        .lame_duck(Duration::from_millis(500))
        .shutdown_timeout(Duration::from_secs(5))
        .component("admin", admin)
        .component(
            "public",
            Public {
                listener: Mutex::new(Some(public)),
            },
        )
        .build()
        .unwrap();
    let handle = lifecycle.handle();
    let runner = rt.spawn(lifecycle.run());
    assert!(block_on(handle.ready()));

    // A load balancer: routes to the service while /readyz passes.
    let routable = Arc::new(AtomicBool::new(true));
    let done = Arc::new(AtomicBool::new(false));
    let lb = {
        let (routable, done) = (routable.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                let ready = raw(admin_addr, b"GET /readyz HTTP/1.1\r\n\r\n")
                    .map(|r| status(&r) == 200)
                    .unwrap_or(false);
                routable.store(ready, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let (ok, failed) = (Arc::new(AtomicU32::new(0)), Arc::new(AtomicU32::new(0)));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (routable, done, ok, failed) =
                (routable.clone(), done.clone(), ok.clone(), failed.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    if !routable.load(Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(2));
                        continue;
                    }
                    match raw(
                        public_addr,
                        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                    ) {
                        Ok(r) if status(&r) == 200 && body(&r) == "hello" => {
                            ok.fetch_add(1, Ordering::SeqCst)
                        }
                        _ => failed.fetch_add(1, Ordering::SeqCst),
                    };
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // A slow request in flight when the stop comes.
    let slow = std::thread::spawn(move || {
        raw(
            public_addr,
            b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        )
    });
    std::thread::sleep(Duration::from_millis(50));
    let t0 = Instant::now();
    handle.request_shutdown(None);
    // Lame duck: readiness fails at once, the public port still serves.
    assert_eq!(status(&get(admin_addr, "/readyz")), 500);
    assert!(
        t0.elapsed() < Duration::from_millis(50),
        "{:?}",
        t0.elapsed()
    );
    let r = raw(
        public_addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(body(&r), "hello");
    assert_eq!(status(&get(admin_addr, "/livez")), 200);

    let report = rt.block_on(runner).unwrap().unwrap();
    done.store(true, Ordering::SeqCst);
    lb.join().unwrap();
    for c in clients {
        c.join().unwrap();
    }
    let slow = slow.join().unwrap().unwrap();
    assert_eq!(body(&slow), "slow", "{slow}");
    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    eprintln!("load during shutdown: {ok} ok, {failed} failed\n{report}");
    assert!(ok > 10, "too little load: {ok}");
    assert_eq!(failed, 0);
    // The slow request was still in flight when the drain began: the public
    // server's stop waited for it.
    let public = report.component("public").unwrap();
    assert!(
        public.stop_took.unwrap() >= Duration::from_millis(200),
        "{report}"
    );
}

#[test]
fn checks_run_on_the_applications_runtime() {
    // A check that needs tokio's timer: it works because the admin server
    // runs checks inside the lifecycle, which tokio drives here.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let admin = AdminServer::loopback(0).unwrap();
    let addr = admin.local_addr();
    let lifecycle = Lifecycle::builder()
        .component("admin", admin)
        .health_check(
            "tokio-timer",
            check_fn(|| async {
                tokio::time::sleep(Duration::from_millis(1)).await;
                Health::Healthy
            }),
        )
        .build()
        .unwrap();
    let handle = lifecycle.handle();
    let probe = std::thread::spawn(move || {
        assert!(block_on(handle.ready()));
        let r = get(addr, "/readyz/tokio-timer");
        handle.request_shutdown(None);
        r
    });
    rt.block_on(lifecycle.run()).unwrap();
    let r = probe.join().unwrap();
    assert_eq!(status(&r), 200, "{r}");
    assert_eq!(body(&r), "ok");
}

/// Reads one keep-alive answer: headers, then `Content-Length` bytes.
fn read_answer(c: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(c.read(&mut byte).unwrap(), 1, "closed early: {head:?}");
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .map_or(0, |n| n.parse().unwrap());
    let mut body = vec![0u8; len];
    c.read_exact(&mut body).unwrap();
    head + &String::from_utf8(body).unwrap()
}

/// Every duration and count of `AdminOptions` at zero and at its maximum:
/// a refusal at bind, or a server that answers, never a panic.
#[test]
fn every_option_at_zero_and_at_its_maximum() {
    // Zero timeouts would fail every request: refused, naming the option.
    for (name, options) in [
        (
            "header_timeout",
            AdminOptions::new().header_timeout(Duration::ZERO),
        ),
        (
            "body_timeout",
            AdminOptions::new().body_timeout(Duration::ZERO),
        ),
        (
            "write_timeout",
            AdminOptions::new().write_timeout(Duration::ZERO),
        ),
        (
            "response_timeout",
            AdminOptions::new().response_timeout(Duration::ZERO),
        ),
    ] {
        let err = AdminServer::bind_with("127.0.0.1:0", options).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{name}");
        assert!(err.to_string().contains(name), "{err}");
    }

    // The maximum of every one at once: no deadline, no limit, no panic.
    let s = start(
        AdminOptions::new()
            .header_timeout(Duration::MAX)
            .body_timeout(Duration::MAX)
            .write_timeout(Duration::MAX)
            .response_timeout(Duration::MAX)
            .keep_alive(Duration::MAX)
            .max_connections(usize::MAX)
            .max_request_bytes(usize::MAX)
            .failure_status(u16::MAX),
        |b| b.health_check("down", check_fn(|| async { Health::Unhealthy("x".into()) })),
    );
    let mut idle: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(s.addr).unwrap())
        .collect();
    // header_timeout and body_timeout MAX: a slow head and a slow body are
    // waited for.
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    c.write_all(b"GET /livez HTTP/1.1\r\nContent-Le").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    c.write_all(b"ngth: 2\r\n\r\nx").unwrap();
    std::thread::sleep(Duration::from_millis(200));
    c.write_all(b"y").unwrap();
    let first = read_answer(&mut c);
    assert!(first.starts_with("HTTP/1.1 200 OK\r\n"), "{first}");
    // keep_alive MAX: the connection stays open for the next request.
    assert!(first.contains("Connection: keep-alive\r\n"), "{first}");
    std::thread::sleep(Duration::from_millis(200));
    // max_request_bytes MAX is 1 MiB: a 100 KB header fits.
    let mut big = b"GET /readyz HTTP/1.1\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 100_000));
    big.extend(b"\r\n\r\n");
    c.write_all(&big).unwrap();
    let second = read_answer(&mut c);
    // failure_status u16::MAX is not a status: the default, 500.
    assert!(second.starts_with("HTTP/1.1 500 "), "{second}");
    // max_connections MAX: all 200 idle connections are still open.
    for i in &mut idle {
        i.set_nonblocking(true).unwrap();
        let mut b = [0u8; 1];
        let e = i.read(&mut b).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
    }
    drop(idle);
    s.handle.request_shutdown(None);
    s.runner.join().unwrap().unwrap();

    // The smallest counts: max_connections(0) is one connection, which a
    // newcomer takes over; max_request_bytes(0) is 64 bytes; keep_alive
    // zero is `Connection: close`.
    let s = start(
        AdminOptions::new()
            .max_connections(0)
            .max_request_bytes(0)
            .keep_alive(Duration::ZERO)
            .failure_status(0),
        |b| b.health_check("down", check_fn(|| async { Health::Unhealthy("x".into()) })),
    );
    let mut idle = TcpStream::connect(s.addr).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let r = get(s.addr, "/livez");
    assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
    assert!(r.contains("Connection: close\r\n"), "{r}");
    idle.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut b = [0u8; 1];
    match idle.read(&mut b) {
        Ok(0) => {}
        Err(e)
            if !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) => {}
        other => panic!("the idle connection was not given up: {other:?}"),
    }
    let r = raw(
        s.addr,
        format!("GET /livez HTTP/1.1\r\nX-Pad: {}\r\n\r\n", "p".repeat(60)).as_bytes(),
    )
    .unwrap();
    assert_eq!(status(&r), 431, "{r}");
    assert_eq!(status(&get(s.addr, "/readyz")), 500);
    s.handle.request_shutdown(None);
    s.runner.join().unwrap().unwrap();
}

/// Blocks the thread that polls it for `block` once `go` is set: a runtime
/// stuck in a blocking call.
struct Stuck {
    go: Arc<AtomicBool>,
    block: Duration,
}

impl Component for Stuck {
    async fn run(&self, cx: &Context) -> Result<(), BoxError> {
        let mut stop = cx.stop_signal();
        loop {
            if self.go.swap(false, Ordering::AcqRel) {
                std::thread::sleep(self.block);
            }
            let tick = futures_timer::Delay::new(Duration::from_millis(10));
            if let futures::future::Either::Right(_) =
                futures::future::select(tick, &mut stop).await
            {
                return Ok(());
            }
        }
    }
}

/// With `answer_from_background`, a probe whose checks all refresh in the
/// background is answered by the event loop while the runtime is stuck (it
/// reads results), but only while the runtime's heartbeat is under a second
/// old; then it goes to the runtime and fails. A probe with an on-demand
/// check always goes to the runtime.
#[test]
fn answers_from_background_results_only_while_the_runtime_beats() {
    let go = Arc::new(AtomicBool::new(false));
    let stuck = Stuck {
        go: go.clone(),
        block: Duration::from_millis(2500),
    };
    let s = start(
        AdminOptions::new()
            .answer_from_background(true)
            .response_timeout(Duration::from_millis(300)),
        |b| {
            b.component("stuck", stuck)
                .health_check_with(
                    "refreshed",
                    check_fn(|| async { Health::Healthy }),
                    lameduck::CheckOptions::new().interval(Duration::from_millis(50)),
                )
                .health_check_with(
                    "on-demand",
                    check_fn(|| async { Health::Healthy }),
                    lameduck::CheckOptions::new().probes([lameduck::Probe::Startup]),
                )
        },
    );
    // Let the first background result in.
    let t0 = Instant::now();
    while status(&get(s.addr, "/readyz")) != 200 {
        assert!(t0.elapsed() < Duration::from_secs(5), "never ready");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(status(&get(s.addr, "/startupz/on-demand")), 200);
    go.store(true, Ordering::Release);
    std::thread::sleep(Duration::from_millis(100));
    // Stuck, the last beat at most 350 ms old: the loop answers.
    let t0 = Instant::now();
    let r = get(s.addr, "/readyz?verbose");
    assert_eq!(status(&r), 200, "{r}");
    assert!(body(&r).contains("[+]refreshed ok"), "{r}");
    assert!(
        t0.elapsed() < Duration::from_millis(250),
        "{:?}",
        t0.elapsed()
    );
    // An on-demand check needs the runtime: 503 after the response timeout.
    let r = get(s.addr, "/startupz/on-demand");
    assert_eq!(status(&r), 503, "{r}");
    // The heartbeat over a second old: the runtime must answer, and cannot.
    std::thread::sleep(Duration::from_millis(900));
    let r = get(s.addr, "/readyz");
    assert_eq!(status(&r), 503, "{r}");
    assert!(body(&r).contains("checks did not answer in time"), "{r}");
    // Unstuck: answered again.
    let t0 = Instant::now();
    while status(&get(s.addr, "/readyz")) != 200 {
        assert!(
            t0.elapsed() < Duration::from_secs(5),
            "never answered again"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    s.handle.request_shutdown(None);
    s.runner.join().unwrap().unwrap();
}
