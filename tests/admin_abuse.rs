//! The admin server under abuse, over loopback: a slowloris crowd of idle
//! and half-sent connections never delays a prober, a newcomer that finds
//! every connection busy reads a `503` (never a reset), and keep-alive
//! connections are served and closed when idle.
//!
//! The tests here take a lock each: they measure latencies and hold many
//! sockets, so they do not run beside one another.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures::executor::block_on;
use lameduck::admin::{AdminOptions, AdminServer};
use lameduck::{CheckOptions, Health, Lifecycle, Probe, check_fn};

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Raises the soft limit on open files so that a few thousand sockets fit
/// on either end of the loopback.
fn enough_descriptors(wanted: u64) {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        let current = limit.current.unwrap_or(u64::MAX);
        if current < wanted {
            let raised = limit.maximum.map_or(wanted, |m| m.min(wanted));
            let _ = setrlimit(
                Resource::Nofile,
                Rlimit {
                    current: Some(raised),
                    maximum: limit.maximum,
                },
            );
        }
        let now = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
        assert!(
            now >= wanted,
            "this test needs {wanted} open files; the hard limit allows {now}"
        );
    }
}

struct Started {
    handle: lameduck::Handle,
    addr: SocketAddr,
    runner: std::thread::JoinHandle<Result<lameduck::Report, lameduck::Error>>,
}

impl Started {
    fn stop(self) {
        self.handle.request_shutdown(None);
        self.runner.join().unwrap().unwrap();
    }
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

/// One probe as the kubelet sends it: a fresh connection, `Connection:
/// close`, read to the end. The status, or the error.
fn probe(addr: SocketAddr, path: &str, timeout: Duration) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nUser-Agent: kube-probe/1.31\r\nConnection: close\r\n\r\n")
            .as_bytes(),
    )?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    Ok((status, text))
}

/// Opens a connection and sends `bytes` (maybe nothing), then holds it.
fn hold(addr: SocketAddr, bytes: &[u8]) -> Option<TcpStream> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    if !bytes.is_empty() {
        s.write_all(bytes).ok()?;
    }
    Some(s)
}

#[test]
fn slowloris_never_delays_a_prober() {
    let _serial = serial();
    enough_descriptors(4096);
    let s = start(AdminOptions::new(), |b| b);
    let addr = s.addr;
    // 500 idle connections and 100 half-sent request lines, held open.
    let mut crowd: Vec<TcpStream> = (0..500).filter_map(|_| hold(addr, b"")).collect();
    crowd.extend((0..100).filter_map(|_| hold(addr, b"GET /livez HTTP/1.1\r\nHos")));
    assert!(crowd.len() >= 590, "opened only {}", crowd.len());
    // And more arriving all along, as a real attacker reconnects.
    let attacker = std::thread::spawn(move || {
        let t0 = Instant::now();
        let mut more = Vec::new();
        while t0.elapsed() < Duration::from_secs(3) && more.len() < 1000 {
            more.extend(hold(addr, b"GET /readyz HTTP/1.1\r\n"));
            std::thread::sleep(Duration::from_millis(5));
        }
        more.len()
    });
    // The prober: /livez every 20 ms for 3 s.
    let t0 = Instant::now();
    let mut worst = Duration::ZERO;
    let mut probes = 0;
    while t0.elapsed() < Duration::from_secs(3) {
        let sent = Instant::now();
        let answer = probe(addr, "/livez", Duration::from_secs(2));
        let took = sent.elapsed();
        match answer {
            Ok((200, _)) => {}
            other => panic!("probe {probes} failed after {took:?}: {other:?}"),
        }
        assert!(
            took < Duration::from_secs(1),
            "probe {probes} took {took:?}"
        );
        worst = worst.max(took);
        probes += 1;
        std::thread::sleep(Duration::from_millis(20).saturating_sub(took));
    }
    let reconnects = attacker.join().unwrap();
    eprintln!(
        "slowloris: {} held + {reconnects} arriving; {probes} probes, all 200, slowest {worst:?}",
        crowd.len()
    );
    assert!(probes >= 100, "only {probes} probes in 3 s");
    drop(crowd);
    s.stop();
}

#[test]
fn a_newcomer_over_the_limit_reads_503_never_a_reset() {
    let _serial = serial();
    // Two connections, both busy with a slow check: nothing can be evicted.
    let s = start(AdminOptions::new().max_connections(2), |b| {
        b.health_check_with(
            "slow",
            check_fn(|| async {
                futures_timer::Delay::new(Duration::from_millis(1500)).await;
                Health::Healthy
            }),
            CheckOptions::new().timeout(Duration::from_secs(5)),
        )
    });
    let addr = s.addr;
    let busy: Vec<_> = (0..2)
        .map(|_| std::thread::spawn(move || probe(addr, "/readyz/slow", Duration::from_secs(5))))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let t0 = Instant::now();
    let mut refused = 0;
    while t0.elapsed() < Duration::from_millis(800) {
        match probe(addr, "/livez", Duration::from_secs(2)) {
            Ok((503, text)) => {
                assert!(
                    text.ends_with("\r\n\r\n503 too many connections\n"),
                    "{text}"
                );
                refused += 1;
            }
            Ok(other) => panic!("expected 503, got {other:?}"),
            Err(e) => panic!("the refusal was not readable: {e} ({:?})", e.kind()),
        }
    }
    assert!(refused >= 20, "only {refused} refusals");
    for b in busy {
        let (status, _) = b.join().unwrap().unwrap();
        assert_eq!(status, 200);
    }
    // Once the slow probes are answered, there is room again.
    assert_eq!(
        probe(addr, "/livez", Duration::from_secs(2)).unwrap().0,
        200
    );
    eprintln!("{refused} refusals, each read as a 503");
    s.stop();
}

#[test]
fn the_oldest_incomplete_connection_makes_room() {
    let _serial = serial();
    let s = start(AdminOptions::new().max_connections(3), |b| b);
    let addr = s.addr;
    let mut oldest = hold(addr, b"GET /li").unwrap();
    let mut second = hold(addr, b"GET /livez HT").unwrap();
    let mut third = hold(addr, b"").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    // A fourth takes the oldest one's place, and is answered.
    assert_eq!(
        probe(addr, "/livez", Duration::from_secs(2)).unwrap().0,
        200
    );
    oldest
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let mut buf = [0u8; 64];
    match oldest.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() != ErrorKind::WouldBlock && e.kind() != ErrorKind::TimedOut => {}
        other => panic!("the oldest connection was not closed: {other:?}"),
    }
    // The others were not touched: they can still finish their requests.
    second.write_all(b"TP/1.1\r\n\r\n").unwrap();
    third.write_all(b"GET /livez HTTP/1.1\r\n\r\n").unwrap();
    for c in [&mut second, &mut third] {
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    }
    s.stop();
}

#[test]
fn keep_alive_serves_many_requests_and_closes_when_idle() {
    let _serial = serial();
    let s = start(
        AdminOptions::new().keep_alive(Duration::from_millis(300)),
        |b| b,
    );
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let read_one = |c: &mut TcpStream| {
        // Headers, then exactly Content-Length bytes.
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
            .unwrap()
            .parse()
            .unwrap();
        let mut body = vec![0u8; len];
        c.read_exact(&mut body).unwrap();
        (head, String::from_utf8(body).unwrap())
    };
    for _ in 0..3 {
        c.write_all(b"GET /livez HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let (head, body) = read_one(&mut c);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("Connection: keep-alive\r\n"), "{head}");
        assert_eq!(body, "ok");
    }
    // Pipelined: two requests in one write, two answers in order.
    c.write_all(b"GET /livez HTTP/1.1\r\n\r\nGET /readyz?verbose HTTP/1.1\r\n\r\n")
        .unwrap();
    assert_eq!(read_one(&mut c).1, "ok");
    assert!(read_one(&mut c).1.ends_with("readyz check passed\n"));
    // Idle past the deadline: closed by the server.
    let t0 = Instant::now();
    let mut rest = Vec::new();
    c.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    let idle = t0.elapsed();
    assert!(
        idle >= Duration::from_millis(250) && idle < Duration::from_secs(2),
        "{idle:?}"
    );
    // `Connection: close` and HTTP/1.0 close after one answer.
    for request in [
        &b"GET /livez HTTP/1.1\r\nConnection: close\r\n\r\n"[..],
        b"GET /livez HTTP/1.0\r\n\r\n",
    ] {
        let mut c = TcpStream::connect(s.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        c.write_all(request).unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        assert!(out.contains("Connection: close\r\n"), "{out}");
    }
    s.stop();
}

#[test]
fn a_request_body_is_read_within_its_deadline() {
    let _serial = serial();
    let s = start(
        AdminOptions::new()
            .body_timeout(Duration::from_millis(300))
            .max_request_bytes(1024),
        |b| b,
    );
    // A body that arrives is read, and the request answered.
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    c.write_all(b"GET /livez HTTP/1.1\r\nContent-Length: 5\r\n\r\nhe")
        .unwrap();
    std::thread::sleep(Duration::from_millis(50));
    c.write_all(b"llo").unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    // A body that never comes: 408 after the body timeout.
    let t0 = Instant::now();
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    c.write_all(b"GET /livez HTTP/1.1\r\nContent-Length: 5\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 408 "), "{out}");
    assert!(
        t0.elapsed() >= Duration::from_millis(250),
        "{:?}",
        t0.elapsed()
    );
    // Too large a body, a chunked one, or two lengths: refused at once.
    for (request, status) in [
        (
            &b"GET /livez HTTP/1.1\r\nContent-Length: 5000\r\n\r\n"[..],
            "413",
        ),
        (
            b"GET /livez HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "400",
        ),
        (
            b"GET /livez HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            "400",
        ),
        (b"GET /livez HTTP/1.1\r\nContent-Length: x\r\n\r\n", "400"),
    ] {
        let mut c = TcpStream::connect(s.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        c.write_all(request).unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).unwrap();
        assert_eq!(out.get(9..12), Some(status), "{out}");
    }
    s.stop();
}

#[test]
fn checks_that_do_not_answer_get_503_within_the_response_timeout() {
    let _serial = serial();
    let s = start(
        AdminOptions::new().response_timeout(Duration::from_millis(200)),
        |b| {
            b.health_check_with(
                "stuck",
                check_fn(futures::future::pending::<Health>),
                CheckOptions::new()
                    .probes([Probe::Liveness])
                    .timeout(Duration::from_secs(5)),
            )
        },
    );
    let t0 = Instant::now();
    let (status, text) = probe(s.addr, "/livez", Duration::from_secs(3)).unwrap();
    assert_eq!(status, 503, "{text}");
    assert!(
        text.ends_with("503 checks did not answer in time\n"),
        "{text}"
    );
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(150) && took < Duration::from_secs(2),
        "{took:?}"
    );
    s.stop();
}

/// A burst of connections waits in the kernel's accept queue instead of
/// being dropped (a dropped SYN costs a prober a one-second retransmit):
/// the admin server asks for a queue of 1024, the standard library 128.
#[cfg(target_os = "linux")]
#[test]
fn a_burst_of_connections_fits_in_the_accept_queue() {
    let _serial = serial();
    enough_descriptors(4096);
    let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(128);
    // Bound, not yet started: nothing accepts, the queue alone holds them.
    let admin = AdminServer::loopback(0).unwrap();
    let addr = admin.local_addr();
    let wanted = somaxconn.min(600);
    let queued: Vec<TcpStream> = (0..wanted)
        .map_while(|_| TcpStream::connect_timeout(&addr, Duration::from_millis(300)).ok())
        .collect();
    assert_eq!(
        queued.len(),
        wanted,
        "accept queue full after {}",
        queued.len()
    );
    // Once started, the queue is served and a probe answered.
    let lifecycle = Lifecycle::builder()
        .component("admin", admin)
        .build()
        .unwrap();
    let handle = lifecycle.handle();
    let runner = std::thread::spawn(move || lifecycle.run_blocking());
    assert!(block_on(handle.ready()));
    assert_eq!(
        probe(addr, "/livez", Duration::from_secs(2)).unwrap().0,
        200
    );
    drop(queued);
    handle.request_shutdown(None);
    runner.join().unwrap().unwrap();
}

#[test]
fn stopping_closes_the_port_and_ends_within_its_grace() {
    let _serial = serial();
    let s = start(AdminOptions::new(), |b| {
        b.health_check_with(
            "stuck",
            check_fn(futures::future::pending::<Health>),
            CheckOptions::new()
                .probes([Probe::Liveness])
                .timeout(Duration::from_secs(30)),
        )
    });
    let addr = s.addr;
    let mut half = hold(addr, b"GET /readyz HTTP/1.1\r\n").unwrap();
    let _idle = hold(addr, b"").unwrap();
    let stuck = std::thread::spawn(move || probe(addr, "/livez", Duration::from_secs(5)));
    std::thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    s.handle.request_shutdown(None);
    s.runner.join().unwrap().unwrap();
    // One second of grace for what is in progress, then everything closed.
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_err());
    // The request still being read was told, not dropped.
    half.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut out = String::new();
    half.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 503 "), "{out}");
    assert!(out.ends_with("503 shutting down\n"), "{out}");
    // The probe whose check never answered got an answer in the grace.
    let (status, text) = stuck.join().unwrap().unwrap();
    assert_eq!(status, 503, "{text}");
}

#[test]
fn a_kept_alive_connection_has_a_header_deadline_for_each_request() {
    let _serial = serial();
    let s = start(
        AdminOptions::new()
            .keep_alive(Duration::MAX)
            .header_timeout(Duration::from_millis(300)),
        |b| b,
    );
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    c.write_all(b"GET /livez HTTP/1.1\r\n\r\n").unwrap();
    let mut first = [0u8; 512];
    let n = c.read(&mut first).unwrap();
    assert!(first[..n].ends_with(b"\r\n\r\nok"), "{:?}", &first[..n]);
    // Idle for longer than the header timeout: still open (no idle limit).
    std::thread::sleep(Duration::from_millis(500));
    // Then half a request: 408 once its header deadline passes.
    let t0 = Instant::now();
    c.write_all(b"GET /livez HTTP/1.1\r\nHo").unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 408 "), "{out}");
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(2),
        "{took:?}"
    );
    s.stop();
}

/// Whether the server closed this connection (end of stream or reset),
/// as opposed to keeping it open past a 2 s wait.
fn closed_by_server(c: &mut TcpStream) -> bool {
    c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut rest = Vec::new();
    match c.read_to_end(&mut rest) {
        Ok(_) => true,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

#[test]
fn a_busy_connection_is_never_evicted_an_idle_kept_alive_one_is() {
    let _serial = serial();
    let s = start(AdminOptions::new().max_connections(2), |b| {
        b.health_check_with(
            "slow",
            check_fn(|| async {
                futures_timer::Delay::new(Duration::from_millis(500)).await;
                Health::Healthy
            }),
            CheckOptions::new().timeout(Duration::from_secs(5)),
        )
    });
    let addr = s.addr;
    // The oldest is busy with a slow check; the second is idle.
    let busy = std::thread::spawn(move || probe(addr, "/readyz/slow", Duration::from_secs(5)));
    std::thread::sleep(Duration::from_millis(100));
    let mut idle = hold(addr, b"").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    // A newcomer takes the idle one's place, not the busy one's.
    assert_eq!(
        probe(addr, "/livez", Duration::from_secs(2)).unwrap().0,
        200
    );
    assert!(closed_by_server(&mut idle));
    assert_eq!(busy.join().unwrap().unwrap().0, 200);
    s.stop();

    // One connection allowed, kept alive and idle after its answer: a
    // newcomer takes its place.
    let s = start(
        AdminOptions::new()
            .max_connections(1)
            .keep_alive(Duration::from_secs(10)),
        |b| b,
    );
    let mut kept = TcpStream::connect(s.addr).unwrap();
    kept.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    kept.write_all(b"GET /livez HTTP/1.1\r\n\r\n").unwrap();
    let mut answer = [0u8; 512];
    let n = kept.read(&mut answer).unwrap();
    assert!(answer[..n].ends_with(b"keep-alive\r\n\r\nok"));
    assert_eq!(
        probe(s.addr, "/livez", Duration::from_secs(2)).unwrap().0,
        200
    );
    assert!(closed_by_server(&mut kept));
    s.stop();
}

#[test]
fn clients_that_never_close_cannot_pile_up_lingering_sockets() {
    let _serial = serial();
    let s = start(AdminOptions::new().max_connections(4), |b| b);
    // Twenty clients: each sends a request and then neither reads nor
    // closes. Answered, they linger; at most 2 × 4 sockets may be held.
    let mut clients = Vec::new();
    for _ in 0..20 {
        let mut c = TcpStream::connect(s.addr).unwrap();
        c.write_all(b"GET /livez HTTP/1.1\r\n\r\n").unwrap();
        clients.push(c);
        std::thread::sleep(Duration::from_millis(5));
    }
    // The oldest were closed to make room, well before their linger (500
    // ms) ran out: a closed socket answers what the client sends next with
    // a reset, a lingering one would read it.
    std::thread::sleep(Duration::from_millis(50));
    let oldest = &mut clients[0];
    let _ = oldest.write_all(b"more");
    std::thread::sleep(Duration::from_millis(50));
    let reset = oldest.write_all(b"more").and_then(|()| {
        std::thread::sleep(Duration::from_millis(50));
        oldest.write_all(b"more")
    });
    assert!(reset.is_err(), "the oldest answered socket was still held");
    // The newest still lingers, as it should.
    let newest = clients.last_mut().unwrap();
    newest.write_all(b"more").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    newest.write_all(b"more").unwrap();
    drop(clients);
    s.stop();
}

/// A client that has its answer may open its next connection at once, even
/// before the server has finished with the last one: with room for a single
/// connection, every next one is still served, never refused as one too many.
#[test]
fn an_answered_connection_never_holds_the_last_place() {
    let _serial = serial();
    let s = start(AdminOptions::new().max_connections(1), |b| b);
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut refused = Vec::new();
    for i in 0..300 {
        assert!(Instant::now() < deadline, "300 probes took over 20 s");
        // Reads to the end of the stream, or only as far as the body's
        // length: a client needs no more to open its next connection.
        let mut c = TcpStream::connect_timeout(&s.addr, Duration::from_secs(2)).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        c.write_all(b"GET /livez HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = Vec::new();
        if i % 2 == 0 {
            c.read_to_end(&mut out).unwrap();
        } else {
            let mut chunk = [0u8; 512];
            while !out.ends_with(b"\r\n\r\nok") {
                let n = c.read(&mut chunk).unwrap();
                if n == 0 {
                    break;
                }
                out.extend_from_slice(&chunk[..n]);
            }
        }
        if !out.starts_with(b"HTTP/1.1 200 ") {
            refused.push(String::from_utf8_lossy(&out).into_owned());
        }
    }
    assert!(
        refused.is_empty(),
        "{} refused: {:?}",
        refused.len(),
        refused.first()
    );
    s.stop();
}

/// An answer larger than the socket takes at once (a verbose probe of
/// thousands of checks, to a client that reads late): the checks' side
/// writes what fits, the loop waits for room and writes the rest, on a
/// kept-alive connection (which then serves its next request) as on a
/// closing one.
#[test]
fn an_answer_too_large_for_the_socket_is_finished_by_the_loop() {
    let _serial = serial();
    let s = start(
        AdminOptions::new().keep_alive(Duration::from_secs(10)),
        |mut b| {
            // About 7 MB: more than a loopback socket takes at once (its
            // send buffer may grow to 4 MB).
            let long = "n".repeat(200);
            for i in 0..30_000 {
                b = b.health_check(
                    format!("a-check-with-a-long-name-{long}-{i:05}"),
                    check_fn(|| async { Health::Healthy }),
                );
            }
            b
        },
    );
    let read_all = |c: &mut TcpStream, close: bool| {
        std::thread::sleep(Duration::from_millis(200));
        let mut out = Vec::new();
        let mut chunk = vec![0u8; 65536];
        loop {
            let n = c.read(&mut chunk).unwrap();
            out.extend_from_slice(&chunk[..n]);
            let done = if close {
                n == 0
            } else {
                out.ends_with(b"readyz check passed\n")
            };
            if done {
                return String::from_utf8(out).unwrap();
            }
            assert!(n > 0, "closed early after {} bytes", out.len());
        }
    };
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for close in [false, false, true] {
        let connection = if close { "close" } else { "keep-alive" };
        c.write_all(
            format!("GET /readyz?verbose HTTP/1.1\r\nConnection: {connection}\r\n\r\n").as_bytes(),
        )
        .unwrap();
        let out = read_all(&mut c, close);
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert!(len > 6_000_000, "{len}");
        assert_eq!(body.len(), len);
        assert_eq!(body.matches("\n[+]a-check-with").count(), 30_000);
    }
    s.stop();
}

/// A kept-alive connection whose client sends its next request the moment
/// an answer is complete (before the server's loop may have taken the
/// connection back from the checks' side) is served every time.
#[test]
fn back_to_back_requests_on_a_kept_alive_connection_are_all_served() {
    let _serial = serial();
    let s = start(
        AdminOptions::new().keep_alive(Duration::from_secs(10)),
        |b| b,
    );
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_nodelay(true).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let answer = b"\r\nConnection: keep-alive\r\n\r\nok";
    for i in 0..500 {
        c.write_all(b"GET /livez HTTP/1.1\r\n\r\n").unwrap();
        let mut out = Vec::new();
        let mut chunk = [0u8; 1024];
        while !out.ends_with(answer) {
            let n = c.read(&mut chunk).unwrap();
            assert!(n > 0, "request {i}: closed after {out:?}");
            out.extend_from_slice(&chunk[..n]);
        }
        assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"), "request {i}");
    }
    s.stop();
}
