//! Measures the admin server, in one run:
//!
//! 1. `GET /readyz?verbose` with 20 registered checks on fresh connections
//!    (`Connection: close`, as the kubelet probes): p50 and p99, beside a
//!    baseline measured in the same run (a minimal blocking `std` server on
//!    another loopback port answering the same bytes, one thread, one
//!    connection at a time, no checks), requests alternating between the two
//!    so that both see the same load; the ratio of their p50s. The
//!    baseline's p50 is the floor of a fresh loopback connection on the
//!    machine: no server answers below it;
//! 2. the same on one keep-alive connection: p50 and p99, and the p50 as a
//!    multiple of the fresh-connection floor;
//! 3. requests per second with several fresh-connection clients;
//! 4. a prober's `/livez` latency while 1,000 idle connections are held
//!    (all of them open on the server: `max_connections` 2048);
//! 5. the same with the default limit (256) while a slowloris attacker
//!    keeps opening half-sent requests: every newcomer evicts an idle one;
//! 6. the same 20 checks refreshed in the background, with
//!    `AdminOptions::answer_from_background`: the event loop answers from
//!    their results, no hop to the lifecycle's thread; p50 against the
//!    baseline again.
//!
//! Not a test: numbers depend on the machine.
//!
//! Run it with:
//!
//! ```text
//! cargo run --release --example 07_admin_bench -- [--requests 5000] [--clients 4] [--seconds 3]
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use lameduck::admin::{AdminOptions, AdminServer};
use lameduck::{BoxError, CheckOptions, Handle, Health, Lifecycle, check_fn};

const VERBOSE: &[u8] = b"GET /readyz?verbose HTTP/1.1\r\nHost: bench\r\n\r\n";
const PROBE: &[u8] = b"GET /livez HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";

/// One request on a fresh connection; whether it got 200.
fn fresh(addr: SocketAddr, request: &[u8]) -> std::io::Result<bool> {
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(request)?;
    let mut out = Vec::with_capacity(1024);
    s.read_to_end(&mut out)?;
    Ok(out.starts_with(b"HTTP/1.1 200 "))
}

/// One request on a kept-alive connection: reads exactly one answer.
fn again(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<bool> {
    s.write_all(VERBOSE)?;
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(buf);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            if body.len() >= len {
                return Ok(head.starts_with("HTTP/1.1 200 "));
            }
        }
    }
}

/// The baseline: a blocking server that reads a request's head and answers
/// `answer`, `n` times, then ends.
fn baseline(answer: Vec<u8>, n: u64) -> std::io::Result<(SocketAddr, std::thread::JoinHandle<()>)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        for _ in 0..n {
            let Ok((mut s, _)) = listener.accept() else {
                continue;
            };
            let _ = s.set_nodelay(true);
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let mut len = 0;
            while !buf[..len].windows(4).any(|w| w == b"\r\n\r\n") && len < buf.len() {
                match s.read(&mut buf[len..]) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => len += k,
                }
            }
            let _ = s.write_all(&answer);
        }
    });
    Ok((addr, server))
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn report(what: &str, mut lat: Vec<Duration>, failed: u64) {
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)];
    println!(
        "{what}: {} requests, p50 {:.0?}, p99 {:.0?}, max {:.0?}, {failed} failed",
        lat.len(),
        pct(0.50),
        pct(0.99),
        lat[lat.len() - 1]
    );
}

fn median(lat: &mut [Duration]) -> Duration {
    lat.sort();
    lat[lat.len() / 2]
}

/// A lifecycle with the admin server and 20 passing checks, refreshed in
/// the background every `interval` if given.
fn serve(
    options: AdminOptions,
    interval: Option<Duration>,
) -> Result<(SocketAddr, Handle, std::thread::JoinHandle<()>), BoxError> {
    let admin = AdminServer::bind_with("127.0.0.1:0", options)?;
    let addr = admin.local_addr();
    let mut builder = Lifecycle::builder().component("admin", admin);
    for i in 0..20 {
        let mut check = CheckOptions::new();
        if let Some(interval) = interval {
            check = check.interval(interval);
        }
        builder = builder.health_check_with(
            format!("check-{i:02}"),
            check_fn(|| async { Health::Healthy }),
            check,
        );
    }
    let lifecycle = builder.build()?;
    let handle = lifecycle.handle();
    let runner = std::thread::spawn(move || {
        if let Err(e) = lifecycle.run_blocking() {
            eprintln!("lifecycle failed: {e}");
        }
    });
    futures::executor::block_on(handle.ready());
    Ok((addr, handle, runner))
}

/// Probes `/livez` on fresh connections, back to back, `n` times.
fn prober(addr: SocketAddr, n: u64) -> (Vec<Duration>, u64) {
    let (mut lat, mut failed) = (Vec::new(), 0);
    for _ in 0..n {
        let t0 = Instant::now();
        match fresh(addr, PROBE) {
            Ok(true) => lat.push(t0.elapsed()),
            _ => failed += 1,
        }
    }
    (lat, failed)
}

fn main() -> Result<(), BoxError> {
    let (requests, clients, seconds) = (
        arg("--requests", 5000),
        arg("--clients", 4),
        arg("--seconds", 3),
    );
    let options = AdminOptions::new()
        .max_connections(2048)
        .keep_alive(Duration::from_secs(10));
    let (addr, handle, runner) = serve(options, None)?;

    // 1. Fresh connections, after a warm-up, alternating with the baseline.
    let close = b"GET /readyz?verbose HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n";
    let mut answer = Vec::new();
    {
        let mut s = TcpStream::connect(addr)?;
        s.write_all(close)?;
        s.read_to_end(&mut answer)?;
    }
    let (base_addr, base) = baseline(answer.clone(), 200 + requests)?;
    for _ in 0..200 {
        fresh(addr, close)?;
        fresh(base_addr, close)?;
    }
    let mut lat = Vec::with_capacity(requests as usize);
    let mut base_lat = Vec::with_capacity(requests as usize);
    let (mut failed, mut base_failed) = (0, 0);
    for _ in 0..requests {
        let t0 = Instant::now();
        match fresh(addr, close) {
            Ok(true) => lat.push(t0.elapsed()),
            _ => failed += 1,
        }
        let t0 = Instant::now();
        match fresh(base_addr, close) {
            Ok(true) => base_lat.push(t0.elapsed()),
            _ => base_failed += 1,
        }
    }
    base.join().map_err(|_| "baseline panicked")?;
    let (p50, floor) = (median(&mut lat.clone()), median(&mut base_lat.clone()));
    let ratio = p50.as_secs_f64() / floor.as_secs_f64();
    report("/readyz?verbose, 20 checks, fresh connections", lat, failed);
    report(
        "baseline (blocking std server, same answer), fresh connections",
        base_lat,
        base_failed,
    );
    println!("fresh connections, p50 lameduck / p50 baseline: {ratio:.2}");
    println!(
        "floor: a fresh loopback connection answered by the baseline costs p50 {floor:.0?} \
         on this machine; lameduck adds {:.0?} (event loop, hand-off to the lifecycle's \
         executor, 20 checks)",
        p50.saturating_sub(floor)
    );

    // 2. One keep-alive connection.
    let mut s = TcpStream::connect(addr)?;
    s.set_nodelay(true)?;
    let mut buf = Vec::with_capacity(2048);
    let mut lat = Vec::with_capacity(requests as usize);
    let mut failed = 0;
    for _ in 0..requests {
        let t0 = Instant::now();
        match again(&mut s, &mut buf) {
            Ok(true) => lat.push(t0.elapsed()),
            _ => failed += 1,
        }
    }
    drop(s);
    let kept = median(&mut lat.clone());
    report("/readyz?verbose, 20 checks, keep-alive", lat, failed);
    println!(
        "keep-alive, p50 lameduck / p50 baseline on fresh connections: {:.2}",
        kept.as_secs_f64() / floor.as_secs_f64()
    );

    // 3. Throughput from several clients.
    let done = Arc::new(AtomicBool::new(false));
    let (ok, bad) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (done, ok, bad) = (done.clone(), ok.clone(), bad.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    match fresh(addr, close) {
                        Ok(true) => ok.fetch_add(1, Ordering::Relaxed),
                        _ => bad.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    let t0 = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds));
    done.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().map_err(|_| "client panicked")?;
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let (ok, bad) = (ok.load(Ordering::Relaxed), bad.load(Ordering::Relaxed));
    println!(
        "{clients} clients, fresh connections, {elapsed:.1} s: {:.0} requests/s ({ok} ok, {bad} failed)",
        ok as f64 / elapsed
    );

    // 4. A prober while 1,000 idle connections are held open.
    let idle: Vec<TcpStream> = (0..1000)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let (lat, failed) = prober(addr, requests.min(2000));
    report(
        &format!("/livez prober, {} idle connections held", idle.len()),
        lat,
        failed,
    );
    drop(idle);
    handle.request_shutdown(None);
    runner.join().map_err(|_| "lifecycle panicked")?;

    // 5. Default limit, 1,000 idle connections and a slowloris attacker.
    let (addr, handle, runner) = serve(AdminOptions::new(), None)?;
    let idle: Vec<TcpStream> = (0..1000)
        .filter_map(|_| TcpStream::connect(addr).ok())
        .collect();
    let done = Arc::new(AtomicBool::new(false));
    let attacker = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            while !done.load(Ordering::Relaxed) && held.len() < 20_000 {
                if let Ok(mut s) = TcpStream::connect(addr) {
                    let _ = s.write_all(b"GET /readyz HTTP/1.1\r\nHost:");
                    held.push(s);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            held.len()
        })
    };
    let (lat, failed) = prober(addr, requests.min(2000));
    done.store(true, Ordering::Relaxed);
    let opened = attacker.join().map_err(|_| "attacker panicked")?;
    report(
        &format!(
            "/livez prober, limit 256, {} idle + {opened} slowloris connections",
            idle.len()
        ),
        lat,
        failed,
    );
    drop(idle);
    handle.request_shutdown(None);
    runner.join().map_err(|_| "lifecycle panicked")?;

    // 6. The 20 checks refreshed in the background (every second), answered
    //    by the event loop from their results, against the baseline again.
    let options = AdminOptions::new().answer_from_background(true);
    let (addr, handle, runner) = serve(options, Some(Duration::from_secs(1)))?;
    while !fresh(addr, close)? {
        std::thread::sleep(Duration::from_millis(10));
    }
    let (base_addr, base) = baseline(answer, 200 + requests)?;
    let (mut lat, mut base_lat) = (Vec::new(), Vec::new());
    let (mut failed, mut base_failed) = (0, 0);
    for i in 0..200 + requests {
        let t0 = Instant::now();
        let ok = fresh(addr, close);
        let took = t0.elapsed();
        let t0 = Instant::now();
        let base_ok = fresh(base_addr, close);
        let base_took = t0.elapsed();
        if i < 200 {
            continue;
        }
        match ok {
            Ok(true) => lat.push(took),
            _ => failed += 1,
        }
        match base_ok {
            Ok(true) => base_lat.push(base_took),
            _ => base_failed += 1,
        }
    }
    base.join().map_err(|_| "baseline panicked")?;
    let ratio =
        median(&mut lat.clone()).as_secs_f64() / median(&mut base_lat.clone()).as_secs_f64();
    report(
        "/readyz?verbose, 20 background checks, answer_from_background, fresh connections",
        lat,
        failed,
    );
    report("baseline, fresh connections", base_lat, base_failed);
    println!("answered from background results, p50 lameduck / p50 baseline: {ratio:.2}");
    handle.request_shutdown(None);
    runner.join().map_err(|_| "lifecycle panicked")?;
    Ok(())
}

/// `println!`, but once the reader of stdout is gone
/// (`cargo run --example 07_admin_bench | head -1`) it prints nothing more
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
